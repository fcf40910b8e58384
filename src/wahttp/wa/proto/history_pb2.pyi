from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Conversation(_message.Message):
    __slots__ = ("id", "tcToken", "tcTokenTimestamp", "tcTokenSenderTimestamp")
    ID_FIELD_NUMBER: _ClassVar[int]
    TCTOKEN_FIELD_NUMBER: _ClassVar[int]
    TCTOKENTIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    TCTOKENSENDERTIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    id: str
    tcToken: bytes
    tcTokenTimestamp: int
    tcTokenSenderTimestamp: int
    def __init__(self, id: _Optional[str] = ..., tcToken: _Optional[bytes] = ..., tcTokenTimestamp: _Optional[int] = ..., tcTokenSenderTimestamp: _Optional[int] = ...) -> None: ...

class PhoneNumberToLIDMapping(_message.Message):
    __slots__ = ("pnJid", "lidJid")
    PNJID_FIELD_NUMBER: _ClassVar[int]
    LIDJID_FIELD_NUMBER: _ClassVar[int]
    pnJid: str
    lidJid: str
    def __init__(self, pnJid: _Optional[str] = ..., lidJid: _Optional[str] = ...) -> None: ...

class HistorySync(_message.Message):
    __slots__ = ("syncType", "conversations", "chunkOrder", "progress", "phoneNumberToLidMappings")
    SYNCTYPE_FIELD_NUMBER: _ClassVar[int]
    CONVERSATIONS_FIELD_NUMBER: _ClassVar[int]
    CHUNKORDER_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    PHONENUMBERTOLIDMAPPINGS_FIELD_NUMBER: _ClassVar[int]
    syncType: int
    conversations: _containers.RepeatedCompositeFieldContainer[Conversation]
    chunkOrder: int
    progress: int
    phoneNumberToLidMappings: _containers.RepeatedCompositeFieldContainer[PhoneNumberToLIDMapping]
    def __init__(self, syncType: _Optional[int] = ..., conversations: _Optional[_Iterable[_Union[Conversation, _Mapping]]] = ..., chunkOrder: _Optional[int] = ..., progress: _Optional[int] = ..., phoneNumberToLidMappings: _Optional[_Iterable[_Union[PhoneNumberToLIDMapping, _Mapping]]] = ...) -> None: ...
