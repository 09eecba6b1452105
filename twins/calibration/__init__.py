"""Plant data into scenarios: calibration from event logs (:mod:`twins.calibration.calibrate`)."""
