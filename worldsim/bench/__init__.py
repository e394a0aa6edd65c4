"""Benchmarks (`worldsim bench`): they measure and print, never assert.

- `worldsim.bench.throughput`: the real game's and the collector's steps per second, the neural env's frames per second
  (single and vector), training throughput.
- `worldsim.bench.hold`: does the dream hold its world under what users do first (standing still, turning away and back,
  long play, random keys), against the real game under the same actions.
- `worldsim.bench.stability`: long dreams: NaNs, memory, collapse to a flat picture, drift from the game's statistics.

Benches sit above every other package: they play the real game (`envs`), drive it with policies (`agents`),
collect (`data_collect`) and dream (`worldsim`).
"""
