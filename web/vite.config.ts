import { defineConfig } from 'vite'

// Static build served by `tumorlab serve --web-dir web/dist`; relative asset paths so the UI
// works under any mount point. No dev proxy is needed for the tests (they use the real server).
export default defineConfig({
  base: './',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 4096,
    sourcemap: false
  }
})
