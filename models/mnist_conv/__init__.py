"""``mnist_conv``: a Bayesian conv net on MNIST."""
