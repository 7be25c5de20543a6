"""Alert delivery against real receivers on 127.0.0.1: an HTTP webhook and an SMTP server."""

import dagster as dg

from mta_assets.defs.monitoring.delivery import REDACTED, Alert, AlertDestinations
from mta_assets_tests.fixtures_alerts import (
    SMTP_PASSWORD,
    SMTP_USER,
    WEBHOOK_TOKEN,
    SmtpReceiver,
    destinations,
    smtp_receiver,
    webhook_receiver,
)


def send_through_sensor(resource: AlertDestinations, alert: Alert) -> list:
    """Deliver as a sensor would: the resource resolved from EnvVar by Dagster itself."""
    reports = []

    @dg.sensor()
    def deliver(context, mta_alerts: AlertDestinations):
        reports.append(mta_alerts.send(alert, context.log))
        reports.append(mta_alerts.send(alert, context.log) if not mta_alerts.any_configured else None)
        return dg.SkipReason("sent")

    deliver.evaluate_tick(dg.build_sensor_context(resources={"mta_alerts": resource}))
    return reports


ALERT = Alert(subject="[mta_assets] test failed for week 2024-01-06", body="Failed step: turnstile_readings")


def test_env_settings_are_bound_by_name_and_secrets_stay_out_of_repr(alert_env):
    with webhook_receiver() as hook, smtp_receiver() as smtp:
        resource = alert_env(destinations(hook, smtp))
        # The UI shows a resource's config; for the secrets it must be the variable's name.
        assert resource.webhook_url.env_var_name == "MTA_ALERT_WEBHOOK_URL"
        assert resource.smtp_password.env_var_name == "MTA_ALERT_SMTP_PASSWORD"
        assert resource.smtp_starttls is False
        assert resource.backoff_seconds == 0.01
        assert WEBHOOK_TOKEN not in repr(resource) and SMTP_PASSWORD not in repr(resource)

        seen = {}

        @dg.sensor()
        def inspect(context, mta_alerts: AlertDestinations):
            seen.update(
                url=mta_alerts.webhook_url,
                repr=repr(mta_alerts),
                described=mta_alerts.describe(),
                recipients=mta_alerts.recipients,
                port=mta_alerts.smtp_port,
                redacted=mta_alerts.redact(f"POST {mta_alerts.webhook_url} failed; /services/{WEBHOOK_TOKEN}"),
            )
            return dg.SkipReason("inspected")

        inspect.evaluate_tick(dg.build_sensor_context(resources={"mta_alerts": resource}))
    assert seen["url"] == hook.url
    assert WEBHOOK_TOKEN not in seen["repr"] and SMTP_PASSWORD not in seen["repr"]
    assert seen["described"] == "webhook at 127.0.0.1, e-mail via 127.0.0.1:%d to 2 recipient(s)" % smtp.port
    assert seen["recipients"] == ["oncall@example.test", "data@example.test"]
    assert seen["port"] == smtp.port
    assert seen["redacted"] == f"POST {REDACTED} failed; {REDACTED}"


def test_webhook_and_email_both_receive_the_alert(alert_env):
    with webhook_receiver() as hook, smtp_receiver() as smtp:
        reports = send_through_sensor(alert_env(destinations(hook, smtp)), ALERT)
    assert reports[0].delivered == ["webhook", "e-mail"] and reports[0].failed == []
    assert len(hook.requests) == 1
    assert hook.requests[0]["json"] == {"text": f"{ALERT.subject}\n{ALERT.body}"}
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message["Subject"] == ALERT.subject
    assert message["To"] == "oncall@example.test, data@example.test"
    assert message.get_content().strip() == ALERT.body
    assert smtp.logins == [SMTP_USER]


def test_no_destination_means_no_alert_and_one_log_line(alert_env, sensor_log):
    resource = alert_env(destinations())
    reports = send_through_sensor(resource, ALERT)
    assert reports[0].configured is False and reports[0].delivered == []
    assert reports[1].configured is False
    assert sensor_log().count("No alert destination configured") == 1


def test_failing_webhook_is_retried_then_logged_and_email_still_arrives(alert_env, sensor_log):
    with webhook_receiver(status=500) as hook, smtp_receiver() as smtp:
        resource = alert_env(destinations(hook, smtp, MTA_ALERT_ATTEMPTS="3"))
        reports = send_through_sensor(resource, ALERT)
    assert reports[0].delivered == ["e-mail"] and reports[0].failed == ["webhook"]
    assert len(hook.requests) == 3
    assert len(smtp.messages) == 1
    logged = sensor_log()
    # urllib3's Retry on the session made the 3 attempts; one line reports them.
    assert "ERROR - Alert webhook not delivered after 3 attempt(s): webhook answered HTTP 500" in logged
    assert "INFO - Alert delivered by e-mail" in logged


def test_hanging_webhook_times_out_once_and_does_not_block_email(alert_env, sensor_log):
    with webhook_receiver(hang=True) as hook, smtp_receiver() as smtp:
        resource = alert_env(destinations(hook, smtp, MTA_ALERT_TIMEOUT_SECONDS="0.3"))
        reports = send_through_sensor(resource, ALERT)
    assert reports[0].delivered == ["e-mail"] and reports[0].failed == ["webhook"]
    # A read timeout may mean the hook posted it: not retried, so no duplicate.
    assert len(hook.requests) == 1
    logged = sensor_log()
    assert "Alert webhook not delivered (not retried): ReadTimeout (it may have been received)" in logged
    assert WEBHOOK_TOKEN not in logged


def test_unreachable_destinations_are_logged_without_secrets(alert_env, sensor_log):
    with webhook_receiver() as hook:
        dead_url = hook.url  # the server is closed on exit: connections are refused
    with smtp_receiver() as smtp:
        dead_smtp_port = smtp.port
    env = destinations(None, None, MTA_ALERT_WEBHOOK_URL=dead_url, MTA_ALERT_ATTEMPTS="2")
    env.update(
        {k: v for k, v in destinations(None, SmtpReceiver(port=dead_smtp_port)).items() if "SMTP" in k}
    )
    reports = send_through_sensor(alert_env(env), ALERT)
    assert reports[0].delivered == [] and sorted(reports[0].failed) == ["e-mail", "webhook"]
    logged = sensor_log()
    assert "Alert webhook not delivered after 2 attempt(s): ConnectionError" in logged
    assert "Alert e-mail not delivered after 2 attempt(s): cannot connect" in logged
    assert WEBHOOK_TOKEN not in logged and SMTP_PASSWORD not in logged


def test_wrong_smtp_password_is_reported_without_echoing_it(alert_env, sensor_log):
    with smtp_receiver() as smtp:
        env = destinations(None, smtp, MTA_ALERT_SMTP_PASSWORD="not-the-" + SMTP_PASSWORD)
        reports = send_through_sensor(alert_env(env), ALERT)
    assert reports[0].failed == ["e-mail"]
    assert smtp.messages == []
    logged = sensor_log()
    assert "SMTP login refused (code 535)" in logged
    assert SMTP_PASSWORD not in logged


def test_a_token_that_requests_percent_encodes_is_redacted_in_every_form(alert_env, sensor_log):
    with webhook_receiver() as hook:
        dead_url = hook.url.replace(WEBHOOK_TOKEN, "TOKEN|PIPE|SECRET")
    resource = alert_env(destinations(None, None, MTA_ALERT_WEBHOOK_URL=dead_url, MTA_ALERT_ATTEMPTS="2"))
    reports = send_through_sensor(resource, ALERT)
    assert reports[0].failed == ["webhook"]
    logged = sensor_log()
    assert "Alert webhook not delivered after 2 attempt(s): ConnectionError" in logged
    for form in ("TOKEN|PIPE|SECRET", "TOKEN%7CPIPE%7CSECRET", "PIPE"):
        assert form not in logged


def test_delivery_stops_at_the_alert_deadline(alert_env, sensor_log):
    import time

    with webhook_receiver(status=503) as hook:
        resource = alert_env(
            destinations(hook, None, MTA_ALERT_ATTEMPTS="10", MTA_ALERT_BACKOFF_SECONDS="0.4", MTA_ALERT_DEADLINE_S="1")
        )
        started = time.monotonic()
        reports = send_through_sensor(resource, ALERT)
        elapsed = time.monotonic() - started
    assert reports[0].failed == ["webhook"]
    assert 2 <= len(hook.requests) < 10, "retried, then stopped by the deadline, not by the attempts"
    assert elapsed < 1 + 0.4 + 2
    assert "Alert webhook not delivered after" in sensor_log()
