"""Sinks: where delivered events go. Each module is one sink; ``base`` is the contract."""
