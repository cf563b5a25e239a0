from django.contrib.auth import views as auth_views
from django.urls import path
from wsticket_channels.views import mint_ticket

from chat import views

urlpatterns = [
    path("", views.chat, name="chat"),
    path("login/", auth_views.LoginView.as_view(template_name="chat/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The page POSTs here (with its CSRF token) for a ticket before every connect.
    path("ws-ticket/", mint_ticket, name="ws-ticket"),
    # The browser client, straight from clients/js/index.js.
    path("vendor/wsticket-client.js", views.wsticket_client_js, name="wsticket-client"),
]
