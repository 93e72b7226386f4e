"""``mnist_2x800``: 784 -> 800 -> 800 -> 10 tanh BNN on MNIST."""
