from django.urls import path

from bench.views import bare_intake
from dispatch.urls import urlpatterns as dispatch_urlpatterns

urlpatterns = [path("bench/bare-intake/", bare_intake), *dispatch_urlpatterns]
