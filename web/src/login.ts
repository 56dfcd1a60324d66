import { api, ApiError, type User } from './api'
import { h } from './dom'

export function renderLogin(onDone: (u: User) => void): HTMLElement {
  const user = h('input', { testid: 'login-username', name: 'username', autocomplete: 'username', required: true, autofocus: true })
  const pass = h('input', { testid: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true })
  const msg = h('p.error', { testid: 'login-error', role: 'alert' })
  const submit = h('button.primary', { testid: 'login-submit', type: 'submit' }, 'Log in')
  const form = h(
    'form.login-card',
    {
      onsubmit: async (e: Event) => {
        e.preventDefault()
        msg.textContent = ''
        submit.setAttribute('disabled', '')
        try {
          onDone(await api.login(user.value.trim(), pass.value))
        } catch (err) {
          if (err instanceof ApiError && err.status === 429) msg.textContent = 'Too many attempts; wait a moment and try again.'
          else if (err instanceof ApiError && err.status === 401) msg.textContent = 'Wrong user name or password.'
          else msg.textContent = (err as Error).message
        } finally {
          submit.removeAttribute('disabled')
        }
      }
    },
    h('h1', {}, 'tumorlab'),
    h('p.muted', {}, 'AI-assisted tumour segmentation'),
    h('label', {}, 'User name', user),
    h('label', {}, 'Password', pass),
    submit,
    msg
  )
  return h('div.login-page', {}, form)
}
