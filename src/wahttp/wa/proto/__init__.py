"""Generated protobuf modules: never edit by hand, run scripts/gen-proto."""
