"""The gradient-free optimizers' generations on the NumPy engine: a table by optimizer name (the rule's
declaration -- keys, state shapes -- is in compiler/optimizers.py). The torch engine refuses these
optimizers at the optimizer line (compiler/engines.py)."""

from __future__ import annotations

from typing import Callable

import numpy as np


def genetic(params: dict, state: dict, fitness, rng: np.random.Generator, lr: float, hp: dict) -> float:
    """One generation, in place: `params` are the model's weight arrays by name, `state[name]` their
    buffers (the population, created around the current weights on first use), `fitness(values)`
    the batch loss of a set of weights (it writes them into `params`). Returns the best loss."""
    names = list(params)
    size = hp["population"]
    for name in names:  # individual 0 is the current model, the rest start as mutants of it
        if "population" not in state.setdefault(name, {}):
            w = params[name]
            pop = np.repeat(w[None], size, axis=0)
            pop[1:] += rng.normal(0.0, lr, pop[1:].shape).astype(w.dtype)
            state[name]["population"] = pop
    pops = [state[n]["population"] for n in names]
    losses = np.empty(size)
    for i in range(size):
        losses[i] = fitness({n: pop[i] for n, pop in zip(names, pops)})
    losses = np.where(np.isfinite(losses), losses, np.inf)
    order = np.argsort(losses, kind="stable")
    elite = min(hp["elite"], size)  # at least 1: the best so far always survives, as individual 0
    k = min(hp["tournament"], size)

    def pick(count):  # tournament selection: the best of k drawn at random, `count` times
        draws = rng.integers(0, size, (count, k))
        return draws[np.arange(count), np.argmin(losses[draws], axis=1)]

    children = size - elite
    first, second = pick(children), pick(children)
    for n, pop in zip(names, pops):
        new = np.empty_like(pop)
        new[:elite] = pop[order[:elite]]
        take = rng.random((children,) + pop.shape[1:]) < hp["crossover"]
        new[elite:] = np.where(take, pop[second], pop[first])
        mutate = rng.random(new[elite:].shape) < hp["mutation_rate"]
        new[elite:] += (mutate * rng.normal(0.0, lr, new[elite:].shape)).astype(pop.dtype)
        pop[...] = new
        params[n][...] = pop[0]
    return float(losses[order[0]])


GENERATIONS: dict[str, Callable[..., float]] = {"genetic": genetic}
