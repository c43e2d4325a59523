"""The post-mortem: its model, built from the store, its renderers and its picture."""
