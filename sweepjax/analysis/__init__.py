"""What a sweep's numbers say: the fitted response surface (:mod:`.surface`), rankings
with their uncertainty (:mod:`.ranking`), boundary and flat-axis verdicts
(:mod:`.verdict`, :mod:`.flatness`), training diagnoses (:mod:`.diagnose`), the loss
sanity checks (:mod:`.sanity`) and hidden-unit activations (:mod:`.activations`).
Pure functions of arrays: no store, no CLI."""
