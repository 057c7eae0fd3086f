"""The baseline a user would write: one Celery task per event calling ``requests.post``.

Run by the benchmark as ``celery -A bench.naive worker -P prefork --concurrency=2``.
"""

from __future__ import annotations

import os
from typing import Any
from xml.sax.saxutils import escape

import requests
from celery import Celery

app = Celery("naive", broker=os.environ.get("NAIVE_BROKER", "redis://127.0.0.1:6379/15"))
app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True,
                task_default_queue="naive", worker_hijack_root_logger=False)

NS = "https://app.smartbutton.com/Services/"
ENVELOPE = ('<?xml version="1.0" encoding="utf-8"?><soap:Envelope '
            'xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
            f'<RecordInteraction xmlns="{NS}"><preqRecordInteraction>'
            "<SecurityToken>{token}</SecurityToken><AccountId>{account_id}</AccountId>"
            "<LocationExternalReference>{location}</LocationExternalReference>"
            "<InteractionTypeExternalReference>{interaction_type}</InteractionTypeExternalReference>"
            "<InteractionNote>{note}</InteractionNote></preqRecordInteraction>"
            "</RecordInteraction></soap:Body></soap:Envelope>")


@app.task(name="naive.record")
def record(event: dict[str, Any]) -> int:
    body = ENVELOPE.format(token=escape(os.environ["NAIVE_TOKEN"]),
                           **{k: escape(str(v)) for k, v in event.items()})
    r = requests.post(os.environ["NAIVE_URL"], data=body.encode(), timeout=30, headers={
        "Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{NS}RecordInteraction"'})
    return r.status_code
