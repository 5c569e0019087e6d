"""The model zoo (imported as ``edgekit.models``): one builder per family with its recipe and card."""
