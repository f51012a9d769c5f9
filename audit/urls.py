from django.urls import path

from audit import views

app_name = "support"
urlpatterns = [
    path("", views.audit_search, name="search"),
    path("orders/<int:order_id>/", views.order_timeline, name="order-timeline"),
    path("export.csv", views.audit_export, name="export"),
]
