/// The Ansible callback plugin Steward ships. The engine writes it into DATA/engine/callback_plugins at start, so the
/// plugin always matches the binary. It appends one JSON object per line to $STEWARD_EVENTS_PATH: a task start,
/// each host's result for each task, and the final per-host stats. Ansible's own output still goes to the job log.
enum CallbackPlugin {
    static let name = "steward_events"

    static let source = #"""
        # Steward's event stream: one JSON object per line to $STEWARD_EVENTS_PATH. Written by Steward at start.
        from __future__ import annotations

        import json
        import os
        import time

        from ansible.plugins.callback import CallbackBase

        DOCUMENTATION = '''
            name: steward_events
            type: notification
            short_description: JSON events for Steward's per-host results
            description: Appends one JSON object per event to the file named by STEWARD_EVENTS_PATH.
        '''


        class CallbackModule(CallbackBase):
            CALLBACK_VERSION = 2.0
            CALLBACK_TYPE = "notification"
            CALLBACK_NAME = "steward_events"
            CALLBACK_NEEDS_ENABLED = True

            def __init__(self):
                super().__init__()
                path = os.environ.get("STEWARD_EVENTS_PATH")
                self._out = open(path, "a", buffering=1, encoding="utf-8") if path else None
                self._task = ""

            def _emit(self, **event):
                if self._out is None:
                    return
                event["at"] = time.time()
                self._out.write(json.dumps(event, default=str, separators=(",", ":")) + "\n")

            def v2_playbook_on_task_start(self, task, is_conditional):
                self._task = task.get_name().strip()
                self._emit(event="task", task=self._task)

            def v2_playbook_on_handler_task_start(self, task):
                self._task = task.get_name().strip()
                self._emit(event="task", task=self._task)

            def _result(self, status, result):
                body = result._result if isinstance(result._result, dict) else {}
                detail = {}
                for key in ("msg", "rc", "stderr", "stdout", "cmd", "reason"):
                    if key in body and body[key] not in (None, "", []):
                        value = body[key]
                        detail[key] = self._cut(value, 2000) if isinstance(value, str) else value
                diff = body.get("diff")
                if diff:
                    # --diff output: the before/after of each changed file or package, kept short.
                    detail["diff"] = self._cut(json.dumps(diff, default=str), 4000)
                changed = bool(body.get("changed", False))
                facts = body.get("ansible_facts") or {}
                if status == "ok" and isinstance(facts, dict) and "steward_facts" in facts:
                    self._emit(event="facts", host=result._host.get_name(), facts=facts["steward_facts"])
                # What Steward reads back from a play (a rollout's plan, its report) travels whole, apart from the
                # display copy above.
                report = facts.get("steward_report") if isinstance(facts, dict) else None
                if status == "ok" and isinstance(report, dict) and isinstance(report.get("name"), str):
                    self._emit(event="report", host=result._host.get_name(), name=report["name"], body=report.get("body"))
                self._emit(event="result", host=result._host.get_name(), task=self._task or result._task.get_name(),
                           status="changed" if status == "ok" and changed else status, detail=detail)

            @staticmethod
            def _cut(text, keep):
                # The display copy keeps the end of long output and says so; the job log has all of it.
                if len(text) <= keep:
                    return text
                return "[first %d characters cut; the job log has all] " % (len(text) - keep) + text[-keep:]

            def v2_runner_on_ok(self, result):
                self._result("ok", result)

            def v2_runner_on_failed(self, result, ignore_errors=False):
                self._result("ok" if ignore_errors else "failed", result)

            def v2_runner_on_unreachable(self, result):
                self._result("unreachable", result)

            def v2_runner_on_skipped(self, result):
                self._result("skipped", result)

            def v2_playbook_on_stats(self, stats):
                hosts = {}
                for host in sorted(stats.processed.keys()):
                    summary = stats.summarize(host)
                    hosts[host] = {key: summary.get(key, 0) for key in ("ok", "changed", "failures", "unreachable", "skipped")}
                self._emit(event="stats", hosts=hosts)
                if self._out is not None:
                    self._out.flush()

        """#
}
