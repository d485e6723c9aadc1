"""The user's jobs, each planned then run: ``coarse`` / ``fine`` (:mod:`.sweep`),
``auto`` (:mod:`.auto`), ``refit`` (:mod:`.refit`). :mod:`.runner` trains a plan and
stores it, :mod:`.build` turns a trained population into a :class:`SweepResult`."""
