"""Categories and products: what the shop sells."""
