// asio_op: one asynchronous Boost.Asio/Beast operation run to completion on its own
// io_context, for clients that want blocking calls bounded by a stream's expiry (the
// webhook output, the Docker Engine client). Include only where Boost is a dependency.
#pragma once

#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core/error.hpp>

namespace driftwatch {

// Starts the operation (`start` takes the completion handler) and runs `ioc` until it ends:
// the stream's expiry (beast::tcp_stream / basic_stream::expires_after) bounds it.
template <class Start>
boost::beast::error_code RunOp(boost::asio::io_context& ioc, Start&& start) {
  boost::beast::error_code result = boost::asio::error::would_block;
  start([&result](boost::beast::error_code ec, auto&&...) { result = ec; });
  ioc.restart();
  ioc.run();
  return result;
}

}  // namespace driftwatch
