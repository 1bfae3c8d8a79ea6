"""Side-by-side benchmarks of libcontainerd against its anchors (issue 7).

Run ``bench/run`` (or ``.venv/bin/python -m bench``) from the repository root;
``--help`` lists the options, ``--quick`` is the seconds-long smoke run CI uses.
The anchors: ``runc run`` on an equivalent bundle, containerd's own Go client
in a long-lived program of ours (``bench/goclient``), ``ctr``, and, with
``--with-docker``, docker-py talking to a private dockerd.
"""
