"""Services, their tools, and every version of each tool's JSON Schema."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from ftops.common.jobs import Job
from ftops.common.models import ApiKey, TimeStampedModel


class Service(TimeStampedModel):
    name = models.SlugField(max_length=100, unique=True, help_text="e.g. 'payments'")
    display_name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    version = models.CharField(max_length=40, blank=True, help_text="The service's own release, e.g. 1.2.0")
    domain_vocabulary = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=300, blank=True, help_text="Where it was imported from")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SchemaChange(models.TextChoices):
    INITIAL = "initial", "Initial"
    ADDITIVE = "additive", "Additive"
    BREAKING = "breaking", "Breaking"


class Tool(TimeStampedModel):
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="tools")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    current_version = models.ForeignKey(
        "ToolSchemaVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    domain_vocabulary = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["service__name", "name"]
        constraints = [models.UniqueConstraint(fields=["service", "name"], name="uniq_tool_per_service")]

    def __str__(self) -> str:
        return f"{self.service.name}.{self.name}"


class ToolSchemaVersion(models.Model):
    """One immutable version of a tool's ``parameters`` JSON Schema."""

    tool = models.ForeignKey(Tool, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    description = models.TextField(blank=True)
    parameters = models.JSONField(help_text="JSON Schema of the arguments (type object)")
    content_hash = models.CharField(max_length=64, db_index=True)
    inferred = models.BooleanField(default=False, help_text="Schema inferred from examples, not published")
    change = models.CharField(max_length=16, choices=SchemaChange.choices, default=SchemaChange.INITIAL)
    diff = models.JSONField(default=dict, blank=True, help_text="What changed from the previous version")
    source = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tool_id", "number"]
        constraints = [models.UniqueConstraint(fields=["tool", "number"], name="uniq_schema_version_number")]

    def __str__(self) -> str:
        return f"{self.tool} v{self.number}"

    def as_openai_tool(self) -> dict[str, object]:
        return {
            "type": "function",
            "function": {"name": self.tool.name, "description": self.description, "parameters": self.parameters},
        }


class ImportKind(models.TextChoices):
    URL = "url", "MCP server URL"
    DOCUMENTS = "documents", "Per-tool documents with examples"


class CatalogImportJob(Job):
    """An import run by a worker: an MCP server URL, or per-tool documents that carry examples.

    Fetching a URL can take up to the outbound time limit; doing it in the web request would
    hold a web worker for that long per request. Documents with examples are recorded here
    because their examples are written by curation (``ftops.datasets``), which sits above
    the catalog: the catalog hands the job to curation's task by name, and curation writes
    the tools (through the catalog's services) and the examples in one transaction. The row
    records who asked, so the worker audits the import (or its failure) as them.
    """

    kind = models.CharField(max_length=12, choices=ImportKind.choices, default=ImportKind.URL)
    source = models.CharField(max_length=2000, help_text="The MCP server's URL, or a label for the documents")
    documents = models.JSONField(null=True, blank=True,
                                 help_text="The normalised per-tool documents of a documents import")
    service = models.CharField(max_length=100, blank=True, help_text="Service name; the server's own when blank")
    skip_invalid = models.BooleanField(default=False)
    actor = models.CharField(max_length=200, help_text="Who asked: username or 'key:<prefix>'")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    ip = models.GenericIPAddressField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True, help_text="The import report once it succeeded")

    lease_setting = "FTOPS_CATALOG_IMPORT_LEASE_S"

    class Meta(Job.Meta):
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"catalog import {self.pk} ({self.status})"
