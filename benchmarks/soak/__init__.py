"""``make soak``: the daemon under a steady load with chaos, on loopback only (see __main__)."""
