"""TMU on a model the project did not train: the user's weights (`weights`), the data it saw laid out as
train/ aux/ test/ or a CSV manifest, and the deletion request as a list of files (`layout`), one twin problem
per class of the request (`request`), and the run itself with gold optional (`execute`).

The run goes through the same `jobs.pipeline.start / execute` as every other run (its config's `own` section
says the model is the user's); only where the models come from, the multi-class request and the readouts that
need no gold differ.
"""
