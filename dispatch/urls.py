from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from availability import api as availability_api
from dispatch import api as dispatch_api
from dispatch import views
from eta import views as eta_views
from observability import views as observability_views
from offers import api as offers_api
from proof import api as proof_api
from proof import views as proof_views
from tracking import views as tracking_views
from vendure.views import vendure_webhook

api_v1 = [
    path("orders/", dispatch_api.CurrentOrdersView.as_view(), name="v1-orders"),
    path("orders/<int:order_id>/", dispatch_api.OrderDetailView.as_view(), name="v1-order"),
    path("orders/<int:order_id>/picked-up/", dispatch_api.OrderPickedUpView.as_view(), name="v1-order-picked-up"),
    path("orders/<int:order_id>/delivered/", dispatch_api.OrderDeliveredView.as_view(), name="v1-order-delivered"),
    path("orders/<int:order_id>/failed/", dispatch_api.OrderFailedView.as_view(), name="v1-order-failed"),
    path("me/", availability_api.MeView.as_view(), name="v1-me"),
    path("me/online/", availability_api.GoOnlineView.as_view(), name="v1-me-online"),
    path("me/offline/", availability_api.GoOfflineView.as_view(), name="v1-me-offline"),
    path("me/position/", availability_api.PositionView.as_view(), name="v1-me-position"),
]

handler404 = "dispatch.views.not_found"

api_v2 = [
    path("offers/", offers_api.PendingOffersView.as_view(), name="v2-offers"),
    path("offers/<int:offer_id>/accept/", offers_api.AcceptOfferView.as_view(), name="v2-offer-accept"),
    path("offers/<int:offer_id>/decline/", offers_api.DeclineOfferView.as_view(), name="v2-offer-decline"),
    path("heartbeat/", offers_api.HeartbeatView.as_view(), name="v2-heartbeat"),
    path("availability/", offers_api.AvailabilityView.as_view(), name="v2-availability"),
    path("orders/<int:order_id>/proof/<str:kind>/", proof_api.ProofUploadView.as_view(), name="v2-order-proof"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("admin/", admin.site.urls),
    path("support/proofs/<int:proof_id>/", proof_views.proof_image, name="proof-image"),
    path("support/", include("audit.urls")),
    path("ops/zones/", observability_views.zone_health_page, name="zone-health"),
    path("ops/eta/", eta_views.eta_accuracy_page, name="eta-accuracy"),
    path("ops/zones/rows/", observability_views.zone_health_rows, name="zone-health-rows"),
    path("ops/zones/<slug:slug>/", observability_views.zone_page, name="zone-page"),
    path("ops/zones/<slug:slug>/lists/", observability_views.zone_page_lists, name="zone-page-lists"),
    path("ops/zones/<slug:slug>/map.json", observability_views.zone_map_data, name="zone-map-data"),
    path("api/v1/", include(api_v1)),
    path("api/v2/", include(api_v2)),
    # v1 is frozen: its schema holds its paths only, and docs/api/v1.yaml must match it.
    path("api/schema/", SpectacularAPIView.as_view(api_version="v1", urlconf=[path("api/v1/", include(api_v1))]), name="schema"),
    path("api/schema/v2/", SpectacularAPIView.as_view(api_version="v2", urlconf=[path("api/v2/", include(api_v2))]), name="schema-v2"),
    # The split view serves Swagger UI's start-up script as a file of its own: no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("api/docs/v2/", SpectacularSwaggerSplitView.as_view(url_name="schema-v2"), name="api-docs-v2"),
    path("webhooks/vendure/", vendure_webhook, name="vendure-webhook"),
    # A customer's tracking link: public, found by its token (tracking/).
    path("t/<str:token>/", tracking_views.tracking_page, name="tracking-page"),
    path("t/<str:token>/state.json", tracking_views.tracking_state_json, name="tracking-state"),
    path("healthz", observability_views.healthz, name="healthz"),
    path("readyz", observability_views.readyz, name="readyz"),
    path("metrics", observability_views.metrics, name="metrics"),
]
