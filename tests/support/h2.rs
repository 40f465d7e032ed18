//! An HTTP/2 client over real TLS for the end-to-end tests: the `h2` crate (hyper's
//! own HTTP/2) on rustls with ALPN `h2`, as kube-apiserver's webhook client
//! negotiates it; one connection for many streams. Request bodies are sent within
//! HTTP/2 flow control, chunk by chunk, so a stream the server resets while the
//! client is still sending shows as such instead of vanishing into a send buffer.

use axum::body::Bytes;
use futures::future::poll_fn;
use h2::client::SendRequest;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Runtime;

pub struct H2 {
    runtime: Runtime,
    client: SendRequest<Bytes>,
}

/// What came back on one stream.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// How the client's sending ended: Ok when the whole body went out, Err with
    /// why not (the server reset the stream while it was being sent).
    pub sent: Result<(), String>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

impl H2 {
    /// Connects, negotiates h2 by ALPN and starts the connection's driver.
    pub fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> H2 {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        let mut config = (**config).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let client = runtime.block_on(async {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
            let name = ServerName::try_from("localhost").unwrap_or_else(|e| panic!("{e}"));
            let tls = connector
                .connect(name, tcp)
                .await
                .unwrap_or_else(|e| panic!("TLS handshake: {e}"));
            assert_eq!(
                tls.get_ref().1.alpn_protocol(),
                Some(b"h2".as_slice()),
                "the server did not negotiate h2"
            );
            let (client, connection) = h2::client::handshake(tls)
                .await
                .unwrap_or_else(|e| panic!("h2 handshake: {e}"));
            tokio::spawn(connection);
            client
        });
        H2 { runtime, client }
    }

    /// POSTs `body` to /validate as JSON in DATA frames of at most `chunk` bytes,
    /// with a Content-Length when `declare_length`; Err when no response came.
    pub fn post(
        &mut self,
        body: &[u8],
        chunk: usize,
        declare_length: bool,
    ) -> Result<Answer, String> {
        let mut request = http::Request::post("https://localhost/validate")
            .header("content-type", "application/json");
        if declare_length {
            request = request.header("content-length", body.len());
        }
        let request = request.body(()).map_err(|e| e.to_string())?;
        let client = &mut self.client;
        let body = Bytes::copy_from_slice(body);
        self.runtime.block_on(async {
            let exchange = async {
                let mut client = client.clone().ready().await.map_err(|e| e.to_string())?;
                let (response, mut stream) = client
                    .send_request(request, false)
                    .map_err(|e| format!("cannot open a stream: {e}"))?;
                let sent = send_body(&mut stream, body, chunk).await;
                let response = response.await.map_err(|e| format!("no response: {e}"))?;
                let status = response.status().as_u16();
                let mut received = response.into_body();
                let mut out = Vec::new();
                while let Some(data) = received.data().await {
                    let data = data.map_err(|e| format!("response body: {e}"))?;
                    let _ = received.flow_control().release_capacity(data.len());
                    out.extend_from_slice(&data);
                }
                Ok(Answer {
                    status,
                    body: out,
                    sent,
                })
            };
            tokio::time::timeout(Duration::from_secs(60), exchange)
                .await
                .map_err(|_| "no answer within 60 s".to_string())?
        })
    }
}

/// Sends `data` as the stream's body, each piece only once the server's flow
/// control window has room for it.
async fn send_body(
    stream: &mut h2::SendStream<Bytes>,
    mut data: Bytes,
    chunk: usize,
) -> Result<(), String> {
    if data.is_empty() {
        return stream.send_data(data, true).map_err(|e| e.to_string());
    }
    while !data.is_empty() {
        stream.reserve_capacity(data.len().min(chunk.max(1)));
        let room = match poll_fn(|cx| stream.poll_capacity(cx)).await {
            Some(Ok(room)) => room,
            Some(Err(e)) => return Err(format!("while sending: {e}")),
            None => return Err("the stream closed while its body was being sent".into()),
        };
        if room == 0 {
            continue;
        }
        let piece = data.split_to(room.min(data.len()));
        stream
            .send_data(piece, data.is_empty())
            .map_err(|e| format!("while sending: {e}"))?;
    }
    Ok(())
}
