// Bundled by esbuild (offline) for the JsSIP test page.
import JsSIP from 'jssip';
window.JsSIP = JsSIP;
