"""The scale simulation (``make bench-scale``): a package, so ``make bench`` does not run it."""
