"""Engine.IO v4 / Socket.IO v5 conformance of the gateway's transport, black-box: raw HTTP
and raw websocket frames against a real gateway, each test citing the specification
section it checks (github.com/socketio/engine.io-protocol, github.com/socketio/socket.io-protocol)."""
