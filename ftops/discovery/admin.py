from django.contrib import admin

from ftops.discovery.models import AggregationOutcome, AggregationSource, PublishingSettings

admin.site.register(PublishingSettings)
admin.site.register(AggregationSource)
admin.site.register(AggregationOutcome)
