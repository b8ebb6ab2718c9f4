"""batchtoon: thousands of photos into cartoons, through the AILabTools AI Cartoon Generator API."""

__version__ = "0.1.0"
