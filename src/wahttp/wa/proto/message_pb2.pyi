from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MessageKey(_message.Message):
    __slots__ = ("remoteJid", "fromMe", "id", "participant")
    REMOTEJID_FIELD_NUMBER: _ClassVar[int]
    FROMME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_FIELD_NUMBER: _ClassVar[int]
    remoteJid: str
    fromMe: bool
    id: str
    participant: str
    def __init__(self, remoteJid: _Optional[str] = ..., fromMe: _Optional[bool] = ..., id: _Optional[str] = ..., participant: _Optional[str] = ...) -> None: ...

class MessageContextInfo(_message.Message):
    __slots__ = ("messageSecret",)
    MESSAGESECRET_FIELD_NUMBER: _ClassVar[int]
    messageSecret: bytes
    def __init__(self, messageSecret: _Optional[bytes] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("conversation", "senderKeyDistributionMessage", "extendedTextMessage", "protocolMessage", "deviceSentMessage", "messageContextInfo", "reactionMessage")
    class HistorySyncType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        INITIAL_BOOTSTRAP: _ClassVar[Message.HistorySyncType]
        INITIAL_STATUS_V3: _ClassVar[Message.HistorySyncType]
        FULL: _ClassVar[Message.HistorySyncType]
        RECENT: _ClassVar[Message.HistorySyncType]
        PUSH_NAME: _ClassVar[Message.HistorySyncType]
        NON_BLOCKING_DATA: _ClassVar[Message.HistorySyncType]
        ON_DEMAND: _ClassVar[Message.HistorySyncType]
    INITIAL_BOOTSTRAP: Message.HistorySyncType
    INITIAL_STATUS_V3: Message.HistorySyncType
    FULL: Message.HistorySyncType
    RECENT: Message.HistorySyncType
    PUSH_NAME: Message.HistorySyncType
    NON_BLOCKING_DATA: Message.HistorySyncType
    ON_DEMAND: Message.HistorySyncType
    class ExtendedTextMessage(_message.Message):
        __slots__ = ("text",)
        TEXT_FIELD_NUMBER: _ClassVar[int]
        text: str
        def __init__(self, text: _Optional[str] = ...) -> None: ...
    class SenderKeyDistributionMessage(_message.Message):
        __slots__ = ("groupId", "axolotlSenderKeyDistributionMessage")
        GROUPID_FIELD_NUMBER: _ClassVar[int]
        AXOLOTLSENDERKEYDISTRIBUTIONMESSAGE_FIELD_NUMBER: _ClassVar[int]
        groupId: str
        axolotlSenderKeyDistributionMessage: bytes
        def __init__(self, groupId: _Optional[str] = ..., axolotlSenderKeyDistributionMessage: _Optional[bytes] = ...) -> None: ...
    class DeviceSentMessage(_message.Message):
        __slots__ = ("destinationJid", "message", "phash")
        DESTINATIONJID_FIELD_NUMBER: _ClassVar[int]
        MESSAGE_FIELD_NUMBER: _ClassVar[int]
        PHASH_FIELD_NUMBER: _ClassVar[int]
        destinationJid: str
        message: Message
        phash: str
        def __init__(self, destinationJid: _Optional[str] = ..., message: _Optional[_Union[Message, _Mapping]] = ..., phash: _Optional[str] = ...) -> None: ...
    class ProtocolMessage(_message.Message):
        __slots__ = ("key", "type", "historySyncNotification", "appStateSyncKeyShare", "appStateSyncKeyRequest")
        class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
            __slots__ = ()
            REVOKE: _ClassVar[Message.ProtocolMessage.Type]
            EPHEMERAL_SETTING: _ClassVar[Message.ProtocolMessage.Type]
            EPHEMERAL_SYNC_RESPONSE: _ClassVar[Message.ProtocolMessage.Type]
            HISTORY_SYNC_NOTIFICATION: _ClassVar[Message.ProtocolMessage.Type]
            APP_STATE_SYNC_KEY_SHARE: _ClassVar[Message.ProtocolMessage.Type]
            APP_STATE_SYNC_KEY_REQUEST: _ClassVar[Message.ProtocolMessage.Type]
            MSG_FANOUT_BACKFILL_REQUEST: _ClassVar[Message.ProtocolMessage.Type]
            INITIAL_SECURITY_NOTIFICATION_SETTING_SYNC: _ClassVar[Message.ProtocolMessage.Type]
            APP_STATE_FATAL_EXCEPTION_NOTIFICATION: _ClassVar[Message.ProtocolMessage.Type]
            SHARE_PHONE_NUMBER: _ClassVar[Message.ProtocolMessage.Type]
            MESSAGE_EDIT: _ClassVar[Message.ProtocolMessage.Type]
        REVOKE: Message.ProtocolMessage.Type
        EPHEMERAL_SETTING: Message.ProtocolMessage.Type
        EPHEMERAL_SYNC_RESPONSE: Message.ProtocolMessage.Type
        HISTORY_SYNC_NOTIFICATION: Message.ProtocolMessage.Type
        APP_STATE_SYNC_KEY_SHARE: Message.ProtocolMessage.Type
        APP_STATE_SYNC_KEY_REQUEST: Message.ProtocolMessage.Type
        MSG_FANOUT_BACKFILL_REQUEST: Message.ProtocolMessage.Type
        INITIAL_SECURITY_NOTIFICATION_SETTING_SYNC: Message.ProtocolMessage.Type
        APP_STATE_FATAL_EXCEPTION_NOTIFICATION: Message.ProtocolMessage.Type
        SHARE_PHONE_NUMBER: Message.ProtocolMessage.Type
        MESSAGE_EDIT: Message.ProtocolMessage.Type
        KEY_FIELD_NUMBER: _ClassVar[int]
        TYPE_FIELD_NUMBER: _ClassVar[int]
        HISTORYSYNCNOTIFICATION_FIELD_NUMBER: _ClassVar[int]
        APPSTATESYNCKEYSHARE_FIELD_NUMBER: _ClassVar[int]
        APPSTATESYNCKEYREQUEST_FIELD_NUMBER: _ClassVar[int]
        key: MessageKey
        type: Message.ProtocolMessage.Type
        historySyncNotification: Message.HistorySyncNotification
        appStateSyncKeyShare: Message.AppStateSyncKeyShare
        appStateSyncKeyRequest: Message.AppStateSyncKeyRequest
        def __init__(self, key: _Optional[_Union[MessageKey, _Mapping]] = ..., type: _Optional[_Union[Message.ProtocolMessage.Type, str]] = ..., historySyncNotification: _Optional[_Union[Message.HistorySyncNotification, _Mapping]] = ..., appStateSyncKeyShare: _Optional[_Union[Message.AppStateSyncKeyShare, _Mapping]] = ..., appStateSyncKeyRequest: _Optional[_Union[Message.AppStateSyncKeyRequest, _Mapping]] = ...) -> None: ...
    class HistorySyncNotification(_message.Message):
        __slots__ = ("syncType", "chunkOrder", "progress", "initialHistBootstrapInlinePayload")
        SYNCTYPE_FIELD_NUMBER: _ClassVar[int]
        CHUNKORDER_FIELD_NUMBER: _ClassVar[int]
        PROGRESS_FIELD_NUMBER: _ClassVar[int]
        INITIALHISTBOOTSTRAPINLINEPAYLOAD_FIELD_NUMBER: _ClassVar[int]
        syncType: Message.HistorySyncType
        chunkOrder: int
        progress: int
        initialHistBootstrapInlinePayload: bytes
        def __init__(self, syncType: _Optional[_Union[Message.HistorySyncType, str]] = ..., chunkOrder: _Optional[int] = ..., progress: _Optional[int] = ..., initialHistBootstrapInlinePayload: _Optional[bytes] = ...) -> None: ...
    class AppStateSyncKeyId(_message.Message):
        __slots__ = ("keyId",)
        KEYID_FIELD_NUMBER: _ClassVar[int]
        keyId: bytes
        def __init__(self, keyId: _Optional[bytes] = ...) -> None: ...
    class AppStateSyncKeyFingerprint(_message.Message):
        __slots__ = ("rawId", "currentIndex", "deviceIndexes")
        RAWID_FIELD_NUMBER: _ClassVar[int]
        CURRENTINDEX_FIELD_NUMBER: _ClassVar[int]
        DEVICEINDEXES_FIELD_NUMBER: _ClassVar[int]
        rawId: int
        currentIndex: int
        deviceIndexes: _containers.RepeatedScalarFieldContainer[int]
        def __init__(self, rawId: _Optional[int] = ..., currentIndex: _Optional[int] = ..., deviceIndexes: _Optional[_Iterable[int]] = ...) -> None: ...
    class AppStateSyncKeyData(_message.Message):
        __slots__ = ("keyData", "fingerprint", "timestamp")
        KEYDATA_FIELD_NUMBER: _ClassVar[int]
        FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
        TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
        keyData: bytes
        fingerprint: Message.AppStateSyncKeyFingerprint
        timestamp: int
        def __init__(self, keyData: _Optional[bytes] = ..., fingerprint: _Optional[_Union[Message.AppStateSyncKeyFingerprint, _Mapping]] = ..., timestamp: _Optional[int] = ...) -> None: ...
    class AppStateSyncKey(_message.Message):
        __slots__ = ("keyId", "keyData")
        KEYID_FIELD_NUMBER: _ClassVar[int]
        KEYDATA_FIELD_NUMBER: _ClassVar[int]
        keyId: Message.AppStateSyncKeyId
        keyData: Message.AppStateSyncKeyData
        def __init__(self, keyId: _Optional[_Union[Message.AppStateSyncKeyId, _Mapping]] = ..., keyData: _Optional[_Union[Message.AppStateSyncKeyData, _Mapping]] = ...) -> None: ...
    class AppStateSyncKeyShare(_message.Message):
        __slots__ = ("keys",)
        KEYS_FIELD_NUMBER: _ClassVar[int]
        keys: _containers.RepeatedCompositeFieldContainer[Message.AppStateSyncKey]
        def __init__(self, keys: _Optional[_Iterable[_Union[Message.AppStateSyncKey, _Mapping]]] = ...) -> None: ...
    class AppStateSyncKeyRequest(_message.Message):
        __slots__ = ("keyIds",)
        KEYIDS_FIELD_NUMBER: _ClassVar[int]
        keyIds: _containers.RepeatedCompositeFieldContainer[Message.AppStateSyncKeyId]
        def __init__(self, keyIds: _Optional[_Iterable[_Union[Message.AppStateSyncKeyId, _Mapping]]] = ...) -> None: ...
    class ReactionMessage(_message.Message):
        __slots__ = ("key", "text", "senderTimestampMs")
        KEY_FIELD_NUMBER: _ClassVar[int]
        TEXT_FIELD_NUMBER: _ClassVar[int]
        SENDERTIMESTAMPMS_FIELD_NUMBER: _ClassVar[int]
        key: MessageKey
        text: str
        senderTimestampMs: int
        def __init__(self, key: _Optional[_Union[MessageKey, _Mapping]] = ..., text: _Optional[str] = ..., senderTimestampMs: _Optional[int] = ...) -> None: ...
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    SENDERKEYDISTRIBUTIONMESSAGE_FIELD_NUMBER: _ClassVar[int]
    EXTENDEDTEXTMESSAGE_FIELD_NUMBER: _ClassVar[int]
    PROTOCOLMESSAGE_FIELD_NUMBER: _ClassVar[int]
    DEVICESENTMESSAGE_FIELD_NUMBER: _ClassVar[int]
    MESSAGECONTEXTINFO_FIELD_NUMBER: _ClassVar[int]
    REACTIONMESSAGE_FIELD_NUMBER: _ClassVar[int]
    conversation: str
    senderKeyDistributionMessage: Message.SenderKeyDistributionMessage
    extendedTextMessage: Message.ExtendedTextMessage
    protocolMessage: Message.ProtocolMessage
    deviceSentMessage: Message.DeviceSentMessage
    messageContextInfo: MessageContextInfo
    reactionMessage: Message.ReactionMessage
    def __init__(self, conversation: _Optional[str] = ..., senderKeyDistributionMessage: _Optional[_Union[Message.SenderKeyDistributionMessage, _Mapping]] = ..., extendedTextMessage: _Optional[_Union[Message.ExtendedTextMessage, _Mapping]] = ..., protocolMessage: _Optional[_Union[Message.ProtocolMessage, _Mapping]] = ..., deviceSentMessage: _Optional[_Union[Message.DeviceSentMessage, _Mapping]] = ..., messageContextInfo: _Optional[_Union[MessageContextInfo, _Mapping]] = ..., reactionMessage: _Optional[_Union[Message.ReactionMessage, _Mapping]] = ...) -> None: ...

class HistorySync(_message.Message):
    __slots__ = ("syncType", "chunkOrder", "progress")
    SYNCTYPE_FIELD_NUMBER: _ClassVar[int]
    CHUNKORDER_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    syncType: Message.HistorySyncType
    chunkOrder: int
    progress: int
    def __init__(self, syncType: _Optional[_Union[Message.HistorySyncType, str]] = ..., chunkOrder: _Optional[int] = ..., progress: _Optional[int] = ...) -> None: ...
