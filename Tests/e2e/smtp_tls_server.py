"""A test SMTP server for Steward's e2e tests, run with Debian's /usr/bin/python3 (python3-aiosmtpd): STARTTLS
required, AUTH LOGIN/PLAIN required after it, one account, messages stored in a Maildir.
Usage: smtp_tls_server.py PORT CERT KEY MAILDIR USER PASSWORD"""
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

port, cert, key, maildir, user, password = sys.argv[1:7]


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user and auth_data.password.decode() == password
    return AuthResult(success=ok)


context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
controller = Controller(Mailbox(maildir), hostname="127.0.0.1", port=int(port), tls_context=context, require_starttls=True,
                        auth_required=True, auth_require_tls=True, authenticator=authenticate)
controller.start()
print("ready", flush=True)
try:
    while True:
        time.sleep(3600)
finally:
    controller.stop()
