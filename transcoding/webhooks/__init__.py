"""Signed webhooks (docs/webhooks.md), the Standard Webhooks way.

    events.py     which transitions make which events; writing an event and its deliveries
                  in the transition's own transaction
    delivery.py   claiming, signing, sending and recording one attempt; the retry schedule
    endpoints.py  the requests the admin (and an API) make: endpoints, secrets, redelivery

Events are delivered by the dispatch backends of the jobs (`jobs.dispatch`:
`deliver_webhook(delivery_id)` reaches `jobs.tasks.deliver_webhook`), and the watchdog
re-dispatches deliveries that are overdue or whose worker died.
"""
