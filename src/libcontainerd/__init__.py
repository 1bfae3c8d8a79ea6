"""libcontainerd: run and supervise Linux containers on containerd."""
