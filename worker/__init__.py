"""The relay's worker side: the Celery app hosting the batch consumer, the SOAP client and the
outcome policy. Installed with the ``[worker]`` extra; producers never import it."""
