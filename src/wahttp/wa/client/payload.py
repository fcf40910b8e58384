"""ClientPayload builders: registration of a new companion, login of a linked one."""

from __future__ import annotations

import hashlib
from typing import cast

from wahttp.wa.auth.creds import Creds
from wahttp.wa.client.config import ClientConfig
from wahttp.wa.jid import Jid
from wahttp.wa.proto import client_payload_pb2 as cp

Payload = cp.ClientPayload
KEY_BUNDLE_TYPE = b"\x05"


def _common(config: ClientConfig) -> cp.ClientPayload:
    p = cp.ClientPayload()
    ua = p.userAgent
    ua.platform = cp.ClientPayload.UserAgent.WEB
    primary, secondary, tertiary = config.version
    ua.appVersion.primary, ua.appVersion.secondary, ua.appVersion.tertiary = (
        primary,
        secondary,
        tertiary,
    )
    ua.mcc, ua.mnc = "000", "000"
    ua.osVersion, ua.device, ua.osBuildNumber = "0.1", "Desktop", "0.1"
    ua.releaseChannel = cp.ClientPayload.UserAgent.RELEASE
    ua.localeLanguageIso6391, ua.localeCountryIso31661Alpha2 = "en", "US"
    p.webInfo.webSubPlatform = cp.ClientPayload.WebInfo.WEB_BROWSER
    p.connectType = cp.ClientPayload.WIFI_UNKNOWN
    p.connectReason = cp.ClientPayload.USER_ACTIVATED
    if config.push_name:
        p.pushName = config.push_name
    return p


def login_payload(creds: Creds, config: ClientConfig) -> bytes:
    if creds.me is None:
        raise ValueError("login needs a linked device (creds.me)")
    jid = Jid.parse(creds.me.id)
    p = _common(config)
    p.passive, p.pull = True, True
    p.username = int(jid.user)
    p.device = jid.device or 0
    p.lidDbMigrated = False
    return p.SerializeToString()


def device_props(config: ClientConfig) -> bytes:
    props = cp.DeviceProps()
    props.os = config.browser[0]
    props.platformType = _platform_type(config.browser[1])
    props.requireFullSync = False
    props.version.primary, props.version.secondary, props.version.tertiary = 10, 15, 7
    h = props.historySyncConfig
    h.storageQuotaMb = 10240
    h.inlineInitialPayloadInE2EeMsg = True
    h.supportCallLogHistory = False
    h.supportBotUserAgentChatHistory = True
    h.supportCagReactionsAndPolls = True
    h.supportBizHostedMsg = True
    h.supportRecentSyncChunkMessageCountTuning = True
    h.supportHostedGroupMsg = True
    h.supportFbidBotChatHistory = True
    h.supportMessageAssociation = True
    return props.SerializeToString()


def _platform_type(browser: str) -> cp.DeviceProps.PlatformType:
    upper = browser.upper()
    if upper in cp.DeviceProps.PlatformType.keys():  # noqa: SIM118 (an enum wrapper, not a dict)
        return cast(cp.DeviceProps.PlatformType, cp.DeviceProps.PlatformType.Value(upper))
    return cp.DeviceProps.CHROME


def registration_payload(creds: Creds, config: ClientConfig) -> bytes:
    p = _common(config)
    p.passive, p.pull = False, False
    d = p.devicePairingData
    d.buildHash = hashlib.md5(".".join(map(str, config.version)).encode()).digest()
    d.deviceProps = device_props(config)
    d.eRegid = creds.registration_id.to_bytes(4, "big")
    d.eKeytype = KEY_BUNDLE_TYPE
    d.eIdent = creds.signed_identity_key.public
    d.eSkeyId = creds.signed_pre_key.key_id.to_bytes(3, "big")
    d.eSkeyVal = creds.signed_pre_key.key_pair.public
    d.eSkeySig = creds.signed_pre_key.signature
    return p.SerializeToString()


def payload_for(creds: Creds, config: ClientConfig) -> bytes:
    """Login when linked, registration otherwise (as every WhatsApp Web client does)."""
    return login_payload(creds, config) if creds.is_linked else registration_payload(creds, config)
