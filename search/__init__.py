"""Product search: a `SearchBackend` protocol with an embedded index (tantivy) by default and
Elasticsearch when `DEER_SEARCH_URL` is set, fed by the indexer from `product.*` events."""
