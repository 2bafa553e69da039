"""What runs the product around the course's engine and model: the run folder (checkpoints,
the metrics log, resume, signals), evaluation and the CS224N prediction files, and the
commands ``predict``, ``plot``, ``export`` and ``download``. The course does not teach these;
train.py uses them so that its own lines are the method."""
