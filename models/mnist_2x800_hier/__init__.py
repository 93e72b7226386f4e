"""``mnist_2x800_hier``: the 2x800 network with a learned scale per weight/bias tensor."""
