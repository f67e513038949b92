"""cdcsync: two-way change-data-capture sync between PostgreSQL and external APIs.

Debezium (run by Kafka Connect) streams row changes into one Kafka topic per
entity; Faust agents map each change, decide against the entity's sync state
and call the external system; every change ends as a result or a dead letter.
The subpackages are the architecture: ``connect``, ``schemas``, ``mappers``,
``agents``, ``sinks``, ``streams``, plus ``stack`` (the local stack) and
``refapi`` (the reference external API).
"""

__all__: list[str] = []
__version__ = "0.1.0"
