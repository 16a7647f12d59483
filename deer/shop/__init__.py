"""The shop: the cart and order actors, checkout and the order center."""
