/**
 * Login: the token of the auth policy (docs/operations.md#authorization) is exchanged by the
 * server for a session cookie the page never sees (HttpOnly). The token is not kept.
 */
import { useState } from 'preact/hooks';
import { ApiFailure, call, setCsrfToken } from '../api.js';

export function LoginView({ onLogin }: { onLogin: () => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState('');
  const submit = async (e: Event) => {
    e.preventDefault();
    setError('');
    try {
      const res = await call<{ csrfToken?: string }>('POST', '/api/v1/session', { token });
      if (res.csrfToken !== undefined) setCsrfToken(res.csrfToken);
      setToken('');
      onLogin();
    } catch (err) {
      setError(err instanceof ApiFailure ? err.message : String(err));
    }
  };
  return (
    <form class="login" onSubmit={submit}>
      <h2>Flotilla</h2>
      <p>This scheduler asks for a token (from its auth policy).</p>
      <input
        type="password"
        autocomplete="current-password"
        placeholder="token"
        value={token}
        onInput={(e) => setToken((e.target as HTMLInputElement).value)}
        data-test="token"
      />
      <button type="submit" data-test="login">
        Log in
      </button>
      {error !== '' && <p class="error">{error}</p>}
    </form>
  );
}
