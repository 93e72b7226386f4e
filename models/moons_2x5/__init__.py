"""``moons_2x5``: the PyMC3 tutorial's 2 -> 5 -> 5 -> 1 tanh BNN on two moons."""
