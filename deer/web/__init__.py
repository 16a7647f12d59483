"""HTTP plumbing every domain shares: declared endpoints, validation, errors, middlewares,
the OpenAPI document, operations endpoints and metrics."""
