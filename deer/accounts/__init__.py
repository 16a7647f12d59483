"""Staff users, departments, roles and members (shoppers): identity and access."""
