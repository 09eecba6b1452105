"""Plant data into scenarios: calibration from event logs (:mod:`data.calibrate`)."""
