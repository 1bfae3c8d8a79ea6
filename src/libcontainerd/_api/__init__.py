"""Generated protobuf modules for the containerd API subset we use."""
