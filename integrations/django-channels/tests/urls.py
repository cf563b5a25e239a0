from django.urls import path

from wsticket_channels.views import mint_ticket

urlpatterns = [path("ws-ticket/", mint_ticket)]
