"""Running work: jobs (one input end to end), batches and executors, and what they record.

Nothing here draws on a terminal: progress and reports belong to :mod:`convcli.cli`,
which receives plain outcomes through callbacks. A worker process imports this
layer and the ones below it only.
"""
