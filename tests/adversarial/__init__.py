"""Adversarial cases for issue #21: every bad input is refused in one line naming what is wrong, nothing is lost,
nothing is written outside a run.

Each case asserts the exact outcome: the exception type (or the command's exit code 2 and its single
``amia: error:`` line) and that the message names the file, field or value at fault and what was expected; or
success. ``pytest tests/adversarial -q`` prints the number of cases per family (``conftest.py``):

=================  ==================================================================================
family (module)    what it tries
=================  ==================================================================================
test_settings      every config field out of range, nested fields named by their path, boundaries
test_cli           the command line: options, overrides, YAML presets, devices, run directories, I/O
test_datasets      crafted trajectory files: layout, dtypes, shapes, sizes, non-finite values, bit flips
test_checkpoints   crafted checkpoints: NaN / inf weights, missing metadata, corrupt files, other runs
test_writes        symbolic links, other runs' files, results files: no write outside the run
test_training      training that notices: non-finite losses, bad data before training, interrupts
test_kills         20 kills at random moments of ``train`` and 10 of level 2's, each resumed bit-identical
=================  ==================================================================================

Counts at the time of writing: settings 128, cli 66, datasets 53, checkpoints 32, writes 32, training 13,
kills 31; 355 in all, about 30 s on one thread.
"""
