import { useState } from "preact/hooks";
import { api } from "../api";
import { isTerminal } from "../format";
import { inputText, parseInput } from "../inputs";
import { literalView, typeText } from "../literals";
import type { ExecutionId, Signal } from "../types";
import { ViewNode } from "./Literal";
import { ErrorBox, useAsync } from "./common";

/** The execution's gates waiting for a signal: approve/reject a boolean one, set a typed
 * value for the others; set ones show their value. */
export function Signals({ id, phase, signature }: { id: ExecutionId; phase: string; signature: string }) {
  const running = !isTerminal(phase);
  const r = useAsync(() => api.signals(id), [id.name, phase, signature], 2000, () => running);
  const list = r.data?.signals ?? [];
  if (list.length === 0) return null;
  return (
    <section class="card" aria-labelledby="signals-h">
      <h2 id="signals-h">Gates</h2>
      {r.error ? <ErrorBox error={r.error} what="the signals" /> : null}
      <table class="grid" aria-label="Signals">
        <thead>
          <tr>
            <th scope="col">Signal</th>
            <th scope="col">Type</th>
            <th scope="col">Value</th>
          </tr>
        </thead>
        <tbody>
          {list.map((s) => (
            <tr key={s.id.signal_id} data-signal={s.id.signal_id}>
              <td class="mono">{s.id.signal_id}</td>
              <td>
                <code>{typeText(s.type)}</code>
              </td>
              <td>
                {s.value ? (
                  <ViewNode v={literalView(s.value)} />
                ) : running ? (
                  <SetSignal signal={s} onSet={r.reload} />
                ) : (
                  <span class="muted">never set</span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function SetSignal({ signal, onSet }: { signal: Signal; onSet: () => void }) {
  const [text, setText] = useState(() => inputText(signal.type, null));
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const send = async (value: string) => {
    const parsed = parseInput(signal.type, value);
    if (!parsed.ok) {
      setError(new Error(parsed.error));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await api.setSignal(signal.id, parsed.literal);
      onSet();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const boolean = signal.type.simple === "BOOLEAN";
  return (
    <div class="set-signal">
      {boolean ? (
        <>
          <button type="button" class="primary" disabled={busy} onClick={() => send("true")}>
            Approve
          </button>
          <button type="button" class="danger" disabled={busy} onClick={() => send("false")}>
            Reject
          </button>
        </>
      ) : (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void send(text);
          }}
        >
          <input
            type="text"
            aria-label={`Value of ${signal.id.signal_id}`}
            value={text}
            onInput={(e) => setText((e.target as HTMLInputElement).value)}
          />{" "}
          <button type="submit" disabled={busy}>
            Set
          </button>
        </form>
      )}
      {error ? <ErrorBox error={error} what="the signal" /> : null}
    </div>
  );
}
