"""Requests the product makes to addresses its users give (URL imports, webhooks): the one
owner of which addresses may be reached (`addresses`) and of making the request so that only
a checked address is ever connected to (`http`). The lowest layer: no database, no storage."""
