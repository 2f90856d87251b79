"""What Firestore needs beyond its automatic single-field indexes: the composite indexes of the
code's queries, the TTL fields, and single-field overrides. Terraform reads the same lists
(``terraform/generated/firestore.json``, written by ``make terraform-data``); tests check the
two agree and that every multi-field query in the code has its index here."""

from __future__ import annotations

# (collection, ((field, ASCENDING|DESCENDING), ...), who queries it)
INDEXES: tuple[tuple[str, tuple[tuple[str, str], ...], str], ...] = (
    ("reports", (("sanitized", "ASCENDING"), ("created_at", "ASCENDING")), "services.reports.sanitize_due"),
    ("reports", (("pbx_id", "ASCENDING"), ("created_at", "DESCENDING")), "services.reports.for_admin"),
    ("meetings", (("names_cleared", "ASCENDING"), ("scheduled_start", "ASCENDING")), "services.retention.sweep_meeting_names"),
    ("meetings", (("emails_cleared", "ASCENDING"), ("ends_at", "ASCENDING")), "services.retention.sweep_participant_emails"),
    (
        "pbxs",
        (("dns_meetings_purged", "ASCENDING"), ("dns_failing_since", "ASCENDING")),
        "services.retention.sweep_pbx_dns_meetings",
    ),
    ("statistics", (("granularity", "ASCENDING"), ("period_start", "ASCENDING")), "services.statistics.anonymize_due"),
)

# collections whose documents carry ``expire_at``: Firestore TTL deletes them after it
TTL_COLLECTIONS: tuple[str, ...] = ("nonces", "participant_events", "mails", "recordings", "reports", "statistics", "audit")

# collection-group queries need a collection-group index on the field
COLLECTION_GROUP_FIELDS: tuple[tuple[str, str], ...] = (("extensions", "email"),)
