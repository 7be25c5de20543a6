"""Alert delivery through Apprise against real receivers on 127.0.0.1: an HTTP webhook and an SMTP server."""

import time
import urllib.parse

import dagster as dg
import pytest

from mta_assets.defs.monitoring.delivery import REDACTED, Alert, AlertDestinations
from mta_assets.settings import SettingError
from mta_assets_tests.fixtures_alerts import (
    SMTP_PASSWORD,
    SMTP_USER,
    WEBHOOK_TOKEN,
    SmtpReceiver,
    destinations,
    mailto_url,
    smtp_receiver,
    webhook_receiver,
)

ALERT = Alert(subject="[mta_assets] test failed for week 2024-01-06", body="Failed step: turnstile_readings")


def send_through_sensor(resource: AlertDestinations, alert: Alert = ALERT) -> list:
    """Deliver as a sensor would, twice: the resource resolved from EnvVar by Dagster itself."""
    reports = []

    @dg.sensor()
    def deliver(context, mta_alerts: AlertDestinations):
        reports.extend([mta_alerts.send(alert, context.log), mta_alerts.send(alert, context.log)])
        return dg.SkipReason("sent")

    deliver.evaluate_tick(dg.build_sensor_context(resources={"mta_alerts": resource}))
    return reports


def test_settings_are_bound_by_name_and_secrets_stay_out_of_repr(alert_env):
    with webhook_receiver() as hook, smtp_receiver() as smtp:
        resource = alert_env(destinations(hook, smtp, MTA_ALERT_ATTEMPTS="2"))
    # The UI shows a resource's config: for the secrets it is the variable's name.
    assert resource.urls.env_var_name == "MTA_ALERT_URLS"
    assert resource.webhook_url.env_var_name == "MTA_ALERT_WEBHOOK_URL"
    assert resource.smtp_password.env_var_name == "MTA_ALERT_SMTP_PASSWORD"
    assert (resource.attempts, resource.backoff_seconds) == (2, 0.01)
    assert WEBHOOK_TOKEN not in repr(resource) and SMTP_PASSWORD not in repr(resource)


def test_webhook_and_email_both_receive_the_alert(alert_env):
    with webhook_receiver() as hook, smtp_receiver() as smtp:
        first, _ = send_through_sensor(alert_env(destinations(hook, smtp)))
    assert first.delivered == ["mailto://127.0.0.1", "json://127.0.0.1"] and first.failed == []
    # MTA_ALERT_WEBHOOK_URL keeps Slack's payload: {"text": subject and body}.
    assert [request["json"] for request in hook.requests] == [{"text": ALERT.text}] * 2
    assert hook.requests[0]["path"] == f"/services/{WEBHOOK_TOKEN}"
    mails = smtp.messages[:2]
    assert sorted(m["To"] for m in mails) == ["data@example.test", "oncall@example.test"]
    assert {m["Subject"] for m in mails} == {ALERT.subject}
    assert {m.get_content().replace("\r\n", "\n").strip() for m in mails} == {ALERT.text}
    assert set(smtp.logins) == {SMTP_USER}, "the password from MTA_ALERT_SMTP_PASSWORD was used"


def test_no_destination_means_no_alert_and_one_log_line(alert_env, sensor_log):
    reports = send_through_sensor(alert_env(destinations()))
    assert [r.configured for r in reports] == [False, False] and reports[0].delivered == []
    assert sensor_log().count("No alert destination configured") == 1


def test_failing_webhook_is_retried_then_logged_and_email_still_arrives(alert_env, sensor_log):
    with webhook_receiver(status=500) as hook, smtp_receiver() as smtp:
        first, _ = send_through_sensor(alert_env(destinations(hook, smtp, MTA_ALERT_ATTEMPTS="3")))
    assert first.delivered == ["mailto://127.0.0.1"] and first.failed == ["json://127.0.0.1"]
    assert len(hook.requests) == 6, "3 attempts for each of the two alerts"
    assert len(smtp.messages) == 4
    logged = sensor_log()
    assert "Alert to json://127.0.0.1 not delivered after 3 attempt(s)" in logged
    assert "error=500" in logged and "Alert delivered to mailto://127.0.0.1" in logged


def test_hanging_webhook_times_out_and_does_not_block_email(alert_env, sensor_log):
    with webhook_receiver(hang=True) as hook, smtp_receiver() as smtp:
        # The timeout applies to SMTP too: 1 s leaves the loopback receiver time on a busy machine.
        resource = alert_env(destinations(hook, smtp, MTA_ALERT_TIMEOUT_SECONDS="1", MTA_ALERT_ATTEMPTS="1"))
        started = time.monotonic()
        first, _ = send_through_sensor(resource)
        elapsed = time.monotonic() - started
    assert first.delivered == ["mailto://127.0.0.1"] and first.failed == ["json://127.0.0.1"]
    assert len(hook.requests) == 2 and len(smtp.messages) == 4
    assert elapsed < 2 * 1 + 5, f"{elapsed:.1f} s: each webhook attempt ends at the 1 s read timeout"
    assert WEBHOOK_TOKEN not in sensor_log()


def test_unreachable_destinations_are_logged_without_secrets(alert_env, sensor_log):
    with webhook_receiver() as hook, smtp_receiver() as smtp:
        dead_hook, dead_smtp = hook.url, SmtpReceiver(port=smtp.port)  # closed on exit: refused
    env = destinations(None, dead_smtp, MTA_ALERT_WEBHOOK_URL=dead_hook, MTA_ALERT_ATTEMPTS="2")
    first, _ = send_through_sensor(alert_env(env))
    assert first.delivered == [] and first.failed == ["mailto://127.0.0.1", "json://127.0.0.1"]
    logged = sensor_log()
    assert "Alert to json://127.0.0.1 not delivered after 2 attempt(s)" in logged
    assert "Alert to mailto://127.0.0.1 not delivered after 2 attempt(s)" in logged
    assert WEBHOOK_TOKEN not in logged and SMTP_PASSWORD not in logged


def test_wrong_smtp_password_is_reported_without_echoing_it(alert_env, sensor_log):
    wrong = "not-the-" + SMTP_PASSWORD
    with smtp_receiver() as smtp:
        env = destinations(None, smtp, MTA_ALERT_SMTP_PASSWORD=wrong, MTA_ALERT_ATTEMPTS="1")
        first, _ = send_through_sensor(alert_env(env))
    assert first.failed == ["mailto://127.0.0.1"] and smtp.messages == []
    logged = sensor_log()
    assert "Alert to mailto://127.0.0.1 not delivered" in logged
    assert wrong not in logged and SMTP_PASSWORD not in logged


def test_secrets_in_the_alert_text_and_percent_encoded_tokens_are_redacted(alert_env, sensor_log):
    with webhook_receiver() as hook:
        pass
    dead_url = hook.url.replace(WEBHOOK_TOKEN, "TOKEN|PIPE|SECRET")
    leaky = Alert(subject="[mta_assets] failed", body=f"GET {dead_url} and /services/TOKEN%7CPIPE%7CSECRET failed")
    with webhook_receiver() as live:
        env = destinations(live, None, MTA_ALERT_URLS=dead_url.replace("http://", "json://"), MTA_ALERT_ATTEMPTS="1")
        first, _ = send_through_sensor(alert_env(env), leaky)
    assert first.failed == ["json://127.0.0.1"] and first.delivered == ["json://127.0.0.1"]
    text = live.requests[0]["json"]["text"]
    assert text == f"[mta_assets] failed\nGET {dead_url.split('/services')[0]}{REDACTED} and {REDACTED} failed"
    logged = sensor_log()
    for form in ("TOKEN|PIPE|SECRET", "TOKEN%7CPIPE%7CSECRET", "PIPE", WEBHOOK_TOKEN):
        assert form not in logged and form not in text


def test_delivery_stops_at_the_alert_deadline(alert_env, sensor_log):
    with webhook_receiver(status=503) as hook:
        resource = alert_env(
            destinations(hook, None, MTA_ALERT_ATTEMPTS="10", MTA_ALERT_BACKOFF_SECONDS="0.4", MTA_ALERT_DEADLINE_S="1")
        )
        started = time.monotonic()
        first, _ = send_through_sensor(resource)
        elapsed = time.monotonic() - started
    assert first.failed == ["json://127.0.0.1"]
    assert 2 * 2 <= len(hook.requests) < 2 * 10, "retried, then stopped by the deadline, not by the attempts"
    assert elapsed < 2 * (1 + 0.4) + 3  # two alerts, each within its deadline and one backoff
    assert "not delivered after" in sensor_log()


@pytest.mark.parametrize("where", ["userinfo", "query"])
def test_a_password_inside_a_url_is_refused_naming_the_variable(alert_env, where):
    url = mailto_url(SmtpReceiver(port=2525))
    if where == "userinfo":
        url = url.replace("mailto://", f"mailto://{urllib.parse.quote(SMTP_USER)}:{SMTP_PASSWORD}@")
    else:
        url += f"&pass={SMTP_PASSWORD}"
    with pytest.raises(SettingError) as refused:
        alert_env({"MTA_ALERT_URLS": f"jsons://hooks.example.test/x {url}"})
    message = str(refused.value)
    assert message == (
        "MTA_ALERT_URLS: the destination mailto://127.0.0.1 carries a password in its URL (not shown); "
        "remove it and set MTA_ALERT_SMTP_PASSWORD instead"
    )
    assert SMTP_PASSWORD not in message
