"""App-state sync ("syncd"), sans-IO: the keys, the LT hash, MACs and the patch/snapshot codec.

The phone keeps the account's app state (contact names, chat settings, the push name...) in
collections; every change is a patch of encrypted mutations. Each linked device decrypts the
patches with the app-state sync keys the phone shares, checks the MACs and an LT hash over all
live records, and keeps a version per collection.
"""

from wahttp.wa.appstate.codec import (
    COLLECTIONS,
    AppStateError,
    CollectionState,
    MissingKeyError,
    Mutation,
    NewMutation,
    decode_patch,
    decode_snapshot,
    encode_patch,
    encode_snapshot,
)
from wahttp.wa.appstate.keys import MutationKeys
from wahttp.wa.appstate.lthash import lt_hash_subtract_then_add

__all__ = [
    "COLLECTIONS",
    "AppStateError",
    "CollectionState",
    "MissingKeyError",
    "Mutation",
    "MutationKeys",
    "NewMutation",
    "decode_patch",
    "decode_snapshot",
    "encode_patch",
    "encode_snapshot",
    "lt_hash_subtract_then_add",
]
